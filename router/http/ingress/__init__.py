"""Client-facing protocols around the canonical form.

The OpenAI chat request is the one canonical form inside the gateway. Each ingress
protocol is a pure translator to it and back (`Ingress` in base.py): the request body
in, the answer body and the stream's chunks out, and errors in the protocol's own
shape. The handlers pick the ingress by route and never look inside it.
"""
