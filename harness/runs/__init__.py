"""A run's lifecycle around the graph: start, resume and answer (`runner`), the live objects
a run holds (`resources`), a person's answer to a paused run (`answers`), the live view and
summary (`live`) and `harness clean` (`cleanup`)."""
