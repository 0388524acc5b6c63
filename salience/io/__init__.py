"""Files in and out: decoding images as a viewer saw them, and atomic writes."""
