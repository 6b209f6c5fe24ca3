"""The embedded demo: a real model and labeled images from installed packages, a private broker,
the whole product in one command.
"""
