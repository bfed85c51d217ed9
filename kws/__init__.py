"""Keyword spotting on TensorFlow/Keras: small speech-command models for edge devices."""

import os

# TensorFlow enables its oneDNN kernels by default on Intel CPUs only; on other x86 CPUs
# (AMD EPYC here) turning them on halves the CNN's training time. Users can still opt out
# by setting the variable to 0 before importing kws.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides our own log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
