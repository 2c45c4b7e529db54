"""`ganforge serve`: a small web app to explore a generator in the browser (optional extra: ganforge[serve])."""
