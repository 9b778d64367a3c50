"""The real-scene evaluation set: plate text for the real scenes at hand, its splits, and the
scale / framing sweep made from them (see ``docs/evaluation.md``)."""
