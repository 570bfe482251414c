"""Allow ``python -m geofloodsam``."""

from geofloodsam.cli import main

if __name__ == "__main__":
    main()
