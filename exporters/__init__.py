"""Model exporters: PyTorch, Keras and transformers source models -> ONNX versions in the Triton repository."""
