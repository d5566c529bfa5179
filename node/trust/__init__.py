"""Trust material: signing keys, TLS certificates chained to the federation CA, the signed
federation manifest, and the ``yrd mesh init`` layout that creates them."""
