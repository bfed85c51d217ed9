"""Where clips come from: a folder of labelled recordings, or synthetic speech."""
