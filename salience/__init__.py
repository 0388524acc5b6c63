"""salience: predict where people look in an image."""

from salience.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
__version__ = "0.1.0"
