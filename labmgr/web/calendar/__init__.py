"""The reservations calendar: a week of one host's bookings, a form to book a slot, the
actions on one's own bookings (extend, shorten, cancel), and the signed-in user's
reservations for the dashboard.

The page is drawn on the server from `host_availability`, so it shows exactly what the
API would: the user's own bookings by name, others' as busy blocks (named for teachers
and admins only). Booking and changing go through the reservation services the REST API
uses (`reservation_book`, `reservation_extend`, ...): one rule set; a refusal becomes
sentences next to the fields it concerns.

- `views`: the pages and the form posts;
- `forms`: the booking form and the change form;
- `layout`: the week cut into days and the bookings into pieces placed on them;
- `selectors`: the reads the pages show (my bookings, the policy, the capacity).

Times are drawn in the zone `labmgr.web.timezones` activates for the request.
"""
