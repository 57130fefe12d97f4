"""The shipped artefact judged: preprocessing, ONNX export and parity, scoring, the champion
gate, and the model card."""
