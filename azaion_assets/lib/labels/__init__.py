"""The label vocabulary every stage shares: the class table and its 80 slots (``classes``) and
the YOLO label format (``yolo_format``). It imports nothing of the project."""
