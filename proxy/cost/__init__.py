"""Cost in US dollars: the price table (shipped list + policy overrides) and exchange pricing.

The ``cost`` policy section compiles to a :class:`PriceTable`; the audit record's ``cost`` and
the ratelimit guard's ``spend`` budgets both price an exchange with :func:`exchange_cost`.
"""
from .exchange import exchange_cost, price_of
from .prices import Price
from .table import PriceTable, compile_section

__all__ = ["Price", "PriceTable", "compile_section", "exchange_cost", "price_of"]
