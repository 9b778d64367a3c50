"""The plate recognizer: PP-OCRv4's pretrained text recognizer (from the ``rapidocr-onnxruntime``
wheel, Apache-2.0), narrowed to plate characters, fine-tuned on plates and converted to TFLite."""
