"""Portal accounts and what they buy: sign-up and sessions, fiscal data and
RFC claims, the cart, orders, payments and refunds, facturas (CFDI issued
through a PAC), notices and the plan lifecycle.

May import: ``spaces.access``, ``spaces.cfdi``, ``spaces.files``,
``spaces.core``, ``spaces.sat``."""
