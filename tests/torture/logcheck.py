"""logcheck: the shop's invariants, recomputed from the log alone (eventfoldctl dump).

Fold feeds events (the JSON lines of `eventfoldctl dump`, API.md's EVENT) in log order and
records every violation of the contract it sees:
  - positions dense from 1; each stream's versions dense from 1;
  - every stream starts with its creating event, and an id is created once;
  - wallets: FundsDeposited/PaymentProcessed/OrderCancelled carry balances that follow from
    the previous one, and no balance is ever negative;
  - items: available = restocked - reserved - sold never goes negative (no oversold item);
  - orders: created -> paid -> shipped -> delivered, created|paid -> cancelled, nothing else;
    amount = sum(price x quantity); refunds only of paid orders, for their amount.
It then derives what the read model must answer (API.md section 5) for users, items and
orders, so a test can compare the query side against the log.

Only the standard library; no dependency on the harness.
"""

LEGAL = {
    "PaymentProcessed": ({"created"}, "paid"),
    "OrderShipped": ({"paid"}, "shipped"),
    "OrderDelivered": ({"shipped"}, "delivered"),
    "OrderCancelled": ({"created", "paid"}, "cancelled"),
}


class Fold:
    def __init__(self):
        self.head = 0
        self.versions = {}   # stream -> last version
        self.users = {}      # id -> dict(balance, deposits)
        self.items = {}      # id -> dict(price, restocked, reserved, sold, category, name)
        self.orders = {}     # id -> dict(user, lines, amount, status, version, paid)
        self.violations = []

    def bad(self, ev, msg):
        if len(self.violations) < 200:
            self.violations.append("position %s (%s %s): %s"
                                   % (ev.get("position"), ev.get("stream"), ev.get("type"), msg))

    # -- framing --------------------------------------------------------------------

    def apply(self, ev):
        pos = ev.get("position")
        if pos != self.head + 1:
            self.bad(ev, "position not dense after %d" % self.head)
        self.head = pos if isinstance(pos, int) else self.head + 1
        stream, ver = ev.get("stream"), ev.get("version")
        prev = self.versions.get(stream, 0)
        if ver != prev + 1:
            self.bad(ev, "stream version %r after %d" % (ver, prev))
        self.versions[stream] = prev + 1
        fn = getattr(self, "_" + str(ev.get("type")), None)
        if fn is None:
            self.bad(ev, "unknown event type")
            return
        try:
            fn(ev, ev.get("data") or {})
        except (KeyError, TypeError, ValueError) as e:
            self.bad(ev, "malformed data: %r" % (e,))

    def _stream_id(self, ev, prefix):
        s = ev.get("stream") or ""
        if not s.startswith(prefix):
            self.bad(ev, "event on the wrong stream")
        return s[len(prefix):]

    # -- users ----------------------------------------------------------------------

    def _UserRegistered(self, ev, d):
        uid = self._stream_id(ev, "user-")
        if uid in self.users or d["user_id"] != uid:
            self.bad(ev, "user registered twice or under another id")
        self.users[uid] = {"balance": 0}

    def _user(self, ev, uid):
        u = self.users.get(uid)
        if u is None:
            self.bad(ev, "unknown user %s" % uid)
            u = self.users[uid] = {"balance": 0}
        return u

    def _FundsDeposited(self, ev, d):
        u = self._user(ev, self._stream_id(ev, "user-"))
        if d["amount_cents"] <= 0:
            self.bad(ev, "deposit of %d" % d["amount_cents"])
        u["balance"] += d["amount_cents"]
        if d["balance_cents"] != u["balance"]:
            self.bad(ev, "balance_cents %d, log implies %d" % (d["balance_cents"], u["balance"]))
            u["balance"] = d["balance_cents"]

    # -- items ----------------------------------------------------------------------

    def _ItemAdded(self, ev, d):
        iid = self._stream_id(ev, "item-")
        if iid in self.items or d["item_id"] != iid or d["price_cents"] <= 0:
            self.bad(ev, "item added twice, under another id, or without a price")
        self.items[iid] = {"price": d["price_cents"], "restocked": 0, "reserved": 0, "sold": 0,
                           "name": d.get("name"), "category": d.get("category")}

    def _item(self, ev, iid):
        it = self.items.get(iid)
        if it is None:
            self.bad(ev, "unknown item %s" % iid)
            it = self.items[iid] = {"price": 0, "restocked": 0, "reserved": 0, "sold": 0,
                                    "name": None, "category": None}
        return it

    @staticmethod
    def available(it):
        return it["restocked"] - it["reserved"] - it["sold"]

    def _ItemRestocked(self, ev, d):
        it = self._item(ev, self._stream_id(ev, "item-"))
        it["restocked"] += d["quantity"]
        if d.get("available") is not None and d["available"] != self.available(it):
            self.bad(ev, "available %d, log implies %d" % (d["available"], self.available(it)))

    # -- orders ---------------------------------------------------------------------

    def _OrderCreated(self, ev, d):
        oid = self._stream_id(ev, "order-")
        if oid in self.orders:
            self.bad(ev, "order created twice")
        u = self._user(ev, d["user_id"])
        del u  # existence checked
        lines, amount, seen = [], 0, set()
        for ln in d["lines"]:
            it = self._item(ev, ln["item_id"])
            if ln["item_id"] in seen:
                self.bad(ev, "duplicate item in one order")
            seen.add(ln["item_id"])
            q = ln["quantity"]
            price = ln.get("price_cents", it["price"])
            if not 1 <= q <= 1000:
                self.bad(ev, "quantity %d" % q)
            it["reserved"] += q
            if self.available(it) < 0:
                self.bad(ev, "item %s oversold: available %d" % (ln["item_id"], self.available(it)))
            amount += price * q
            lines.append((ln["item_id"], q, price))
        if amount != d["amount_cents"]:
            self.bad(ev, "amount_cents %d, lines give %d" % (d["amount_cents"], amount))
        self.orders[oid] = {"user": d["user_id"], "lines": lines, "amount": d["amount_cents"],
                            "status": "created", "version": 1}

    def _transition(self, ev):
        oid = self._stream_id(ev, "order-")
        o = self.orders.get(oid)
        if o is None:
            self.bad(ev, "transition of an unknown order")
            return None
        allowed, new = LEGAL[ev["type"]]
        if o["status"] not in allowed:
            self.bad(ev, "illegal transition %s -> %s" % (o["status"], new))
        old = o["status"]
        o["status"] = new
        o["version"] += 1
        return o, old

    def _PaymentProcessed(self, ev, d):
        r = self._transition(ev)
        if r is None:
            return
        o, _ = r
        u = self._user(ev, o["user"])
        if d["amount_cents"] != o["amount"]:
            self.bad(ev, "paid %d for an order of %d" % (d["amount_cents"], o["amount"]))
        u["balance"] -= d["amount_cents"]
        if u["balance"] < 0:
            self.bad(ev, "wallet of %s negative: %d" % (o["user"], u["balance"]))
        if d["balance_cents"] != u["balance"]:
            self.bad(ev, "balance_cents %d, log implies %d" % (d["balance_cents"], u["balance"]))
            u["balance"] = d["balance_cents"]

    def _OrderShipped(self, ev, d):
        r = self._transition(ev)
        if r is None:
            return
        for iid, q, _ in r[0]["lines"]:
            it = self._item(ev, iid)
            it["reserved"] -= q
            it["sold"] += q

    def _OrderDelivered(self, ev, d):
        self._transition(ev)

    def _OrderCancelled(self, ev, d):
        r = self._transition(ev)
        if r is None:
            return
        o, old = r
        for iid, q, _ in o["lines"]:
            self._item(ev, iid)["reserved"] -= q
        refund = d.get("refunded_cents", 0)
        want = o["amount"] if old == "paid" else 0
        if refund != want:
            self.bad(ev, "refunded %r, expected %d (was %s)" % (refund, want, old))
        self._user(ev, o["user"])["balance"] += refund

    # -- what the read model must answer (API.md section 5) --------------------------

    def expected_user(self, uid):
        spent = [o["amount"] for o in self.orders.values()
                 if o["user"] == uid and o["status"] in ("paid", "shipped", "delivered")]
        total = sum(spent)
        placed = sum(1 for o in self.orders.values() if o["user"] == uid and o["status"] != "cancelled")
        return {"wallet_balance_cents": self.users[uid]["balance"], "order_count": placed,
                "total_spent_cents": total,
                "avg_order_value_cents": total // len(spent) if spent else 0,
                "vip": total >= 100000}

    def expected_item(self, iid):
        it = self.items[iid]
        return {"price_cents": it["price"], "available": self.available(it),
                "reserved": it["reserved"], "sold": it["sold"]}

    def expected_order(self, oid):
        o = self.orders[oid]
        return {"user_id": o["user"], "status": o["status"], "amount_cents": o["amount"],
                "version": o["version"]}


def compare(kind, ident, want, got):
    """Differences between an expected dict and an answer (only the expected keys)."""
    return ["%s %s: %s is %r, the log implies %r" % (kind, ident, k, got.get(k), v)
            for k, v in want.items() if got.get(k) != v]


def model_diffs(client, fold, ids=None, headers=None):
    """What the query side answers against what the log implies, for every user, item and
    order of the fold (or of ids = (users, items, orders)). client: anything with
    get(path, headers=...) returning an answer with status, json and body (the harness's)."""
    users, items, orders = ids or (fold.users, fold.items, fold.orders)
    diffs = []
    for kind, keys, want in (("users", users, fold.expected_user), ("items", items, fold.expected_item),
                             ("orders", orders, fold.expected_order)):
        for i in sorted(keys):
            r = client.get("/api/%s/%s" % (kind, i), headers=headers)
            if r.status != 200:
                diffs.append("GET /api/%s/%s: %d %r" % (kind, i, r.status, r.body[:200]))
            else:
                diffs += compare(kind, i, want(i), r.json)
    return diffs
