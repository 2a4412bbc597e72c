"""Shipping the client: export (ONNX, TorchScript), on-device latency, split-inference service.

* :mod:`noisyarl.deploy.export`: ``export_client(run_dir, "onnx")`` with the noise inside the
  graph, and ``verify_export`` against PyTorch.
* :mod:`noisyarl.deploy.quantize`: ``export_int8_client`` (``export --int8``), the int8 client
  calibrated on the run's training images, with the noise kept in float32 inside the graph.
* :mod:`noisyarl.deploy.latency`: client latency (eager, channels_last, ONNX Runtime fp32 and
  int8) and the nominal FLOP/s against the fp32 matrix-product peak.
* :mod:`noisyarl.deploy.wire`: the request format (one safetensors tensor ``z``, no pickle).
* :mod:`noisyarl.deploy.service`: the FastAPI server hosting the utility head.

The device side is :mod:`noisyarl.client`.
"""
