"""Cross-lingual medical entity normalisation (xMEN-style): knowledge bases, candidate
generation (character n-gram TF-IDF, dense bi-encoder, ensemble), cross-encoder re-ranking,
BigBIO / brat I/O, evaluation and the ``xmen_linker`` spaCy component."""
