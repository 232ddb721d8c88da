"""The web app's pages: one file per page, UI only. Logic lives in the `kb` library."""
