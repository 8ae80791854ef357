"""Wire protocols: decode a request into arrays, encode the answer. No model calls here."""
