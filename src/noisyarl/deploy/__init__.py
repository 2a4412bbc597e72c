"""Shipping the client: export (ONNX, TorchScript), on-device latency, split-inference service.

* :mod:`noisyarl.deploy.export`: ``export_client(run_dir, "onnx")`` with the noise inside the
  graph, and ``verify_export`` against PyTorch.
* :mod:`noisyarl.deploy.latency`: client latency (eager, channels_last, ONNX Runtime) and the
  achieved fraction of the machine's peak FLOP/s.
* :mod:`noisyarl.deploy.wire`: the request format (one safetensors tensor ``z``, no pickle).
* :mod:`noisyarl.deploy.service`: the FastAPI server hosting the utility head.

The device side is :mod:`noisyarl.client`.
"""
