"""One place for the registries that configs and manifests refer to by name."""
from __future__ import annotations

import catalogue

#: Vector index classes by the ``kind`` their manifest records ("dense", later "multivector").
indexes = catalogue.create("xapps", "indexes", entry_points=True)

#: Named backbones a config may refer to, e.g. "me5-small" -> installer of the embedded model.
backbones = catalogue.create("xapps", "backbones", entry_points=True)

#: Entity-linking candidate generators by name ("tfidf", "dense", "ensemble").
candidate_generators = catalogue.create("xapps", "candidate_generators", entry_points=True)
