"""One module per topic; each view is ``async def name(page: Page) -> Response``."""
