"""The small helpers every other package uses: errors, atomic writes, defaults and device choice.

- :mod:`camloc.utils.errors`: :class:`CamlocError` and its kinds, each a one-line message with a fix.
- :mod:`camloc.utils.atomic`: files written whole or not at all (temporary file, then rename).
- :mod:`camloc.utils.defaults`: the offline default model and the threshold rules' names.
- :mod:`camloc.utils.device`: the one place camloc decides where tensors live.

It imports nothing of camloc's above it; importing this package itself loads nothing (each module
is imported by name), so that ``errors`` and ``defaults`` stay free of torch.
"""
