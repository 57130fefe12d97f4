"""The shipped artefact judged: preprocessing, ONNX export and parity, scoring, and the
champion gate's verdict."""
