"""What runs on Ray: the session, the trainable entry points and their worker bodies (the only place
that meets tune.report), checkpoint retention, and the tables written from Tune results."""
