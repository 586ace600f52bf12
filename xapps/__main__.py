"""``python -m xapps`` runs the ``xapps`` command line."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="xapps")
