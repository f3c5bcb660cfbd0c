"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions`` and ``/tokenize``.

``router`` (the routes, one thin function each) over ``serving.ChatServing`` (the work:
completions and their streams, grounded Q&A as ``qa/<collection>`` models, usage, counts).
"""
