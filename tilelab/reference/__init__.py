"""Reference models: the golden ops (the one definition of every op's arithmetic), layer specs and halo plans."""
