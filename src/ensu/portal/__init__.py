"""The portal: server-rendered pages for people (applicants, the producer's staff).

Its own ASGI app on its own listener (:func:`ensu.portal.app.create_portal_app`), never
under the API's gateway; nothing below it imports it. See ``README.md`` beside this file
for how to add a page.
"""
