"""The document API: collections, documents, uploads, ingestion jobs and ``/ask``.

``router`` (the routes, one thin function each) over ``serving.DocumentServing`` (the work),
with the request bodies in ``protocol``.
"""
