"""Stage 3: ``onnx_model``, the ``champion`` gate, and ``model_release`` to the edge."""
