"""dattavani: fast, local speech-to-text for Python on whisper.cpp.

>>> from dattavani import Transcriber
>>> result = Transcriber("ggml-tiny.en.bin").transcribe("jfk.flac")   # doctest: +SKIP
>>> print(result.text)                                                 # doctest: +SKIP

Importing the package is light: the native core and audio libraries load on first use.
"""
