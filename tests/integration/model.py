"""model: the shop domain of API.md sections 4 and 5, computed independently in Python.

Shop.apply(cmd) predicts the outcome of one command against the state built from the commands
that succeeded before it: either success (and the state is updated the way the contract says)
or the set of (status, code) answers the contract allows (a few commands could fail for two
reasons; the contract does not rank them). Shop.expected_*() derive the read model's answers
(section 5) from that state and the event times the test read back from the log.
"""

CATEGORIES = ["books", "garden", "kitchen", "office", "toys"]


class Order:
    def __init__(self, oid, user, lines, amount, pos):
        self.oid = oid
        self.user = user
        self.lines = lines  # [(item_id, quantity, price_cents, name, category)]
        self.amount = amount
        self.status = "created"
        self.version = 1
        self.positions = [pos]  # position of each of the order's events, oldest first
        self.created_pos = pos
        self.history = [("created", pos)]


class Shop:
    def __init__(self):
        self.users = {}   # id -> dict(name, balance, version)
        self.items = {}   # id -> dict(name, category, price, restocked, reserved, sold, version)
        self.orders = {}  # id -> Order
        self.head = 0
        # Daily counters are keyed by event position; days come from the log's `at` later.
        self.created_at_pos = []   # positions of OrderCreated
        self.paid_at_pos = []      # (position, amount)
        self.cancel_at_pos = []    # (position, refunded)

    # -- commands ---------------------------------------------------------------------
    # Each returns ("ok", status, extra) when the command must succeed, else
    # ("fail", {(status, code), ...}). Success mutates the state through commit().

    def predict(self, cmd):
        kind = cmd["kind"]
        b = cmd["body"]
        if kind == "register":
            if b["user_id"] in self.users:
                return ("fail", {(409, "already_exists")})
            return ("ok", 201)
        if kind == "deposit":
            errs = set()
            if b["amount_cents"] <= 0:
                errs.add((400, "validation_failed"))
            if cmd["id"] not in self.users:
                errs.add((404, "not_found"))
            return ("fail", errs) if errs else ("ok", 200)
        if kind == "add_item":
            if b["item_id"] in self.items:
                return ("fail", {(409, "already_exists")})
            return ("ok", 201)
        if kind == "restock":
            if cmd["id"] not in self.items:
                return ("fail", {(404, "not_found")})
            return ("ok", 200)
        if kind == "create":
            errs = set()
            if b["user_id"] not in self.users:
                errs.add((404, "not_found"))
            for l in b["items"]:
                it = self.items.get(l["item_id"])
                if it is None:
                    errs.add((404, "not_found"))
                elif self.available(l["item_id"]) < l["quantity"]:
                    errs.add((409, "insufficient_stock"))
            if "order_id" in b and b["order_id"] in self.orders:
                errs.add((409, "already_exists"))
            return ("fail", errs) if errs else ("ok", 201)
        # transitions
        o = self.orders.get(cmd["id"])
        if o is None:
            return ("fail", {(404, "not_found")})
        allowed = {"pay": ("created",), "ship": ("paid",), "deliver": ("shipped",),
                   "cancel": ("created", "paid")}[kind]
        errs = set()
        if o.status not in allowed:
            errs.add((409, "invalid_transition"))
        if kind == "pay" and self.users[o.user]["balance"] < o.amount:
            errs.add((409, "insufficient_funds"))
        return ("fail", errs) if errs else ("ok", 200)

    def available(self, item_id):
        it = self.items[item_id]
        return it["restocked"] - it["reserved"] - it["sold"]

    def commit(self, cmd, answer, pos):
        """Applies a successful command; checks the answer's fields the contract fixes.
        Returns a list of mismatch descriptions (empty when all agree)."""
        kind, b = cmd["kind"], cmd["body"]
        bad = []
        self.head = pos

        def want(field, value):
            if answer.get(field) != value:
                bad.append("%s: %s = %r, expected %r" % (kind, field, answer.get(field), value))

        if kind == "register":
            self.users[b["user_id"]] = {"name": b["name"], "balance": 0, "version": 1}
            want("user_id", b["user_id"])
            want("version", 1)
        elif kind == "deposit":
            u = self.users[cmd["id"]]
            u["balance"] += b["amount_cents"]
            u["version"] += 1
            want("balance_cents", u["balance"])
            want("version", u["version"])
        elif kind == "add_item":
            self.items[b["item_id"]] = {"name": b["name"], "category": b["category"], "price": b["price_cents"],
                                        "restocked": 0, "reserved": 0, "sold": 0, "version": 1}
            want("version", 1)
        elif kind == "restock":
            it = self.items[cmd["id"]]
            it["restocked"] += b["quantity"]
            it["version"] += 1
            want("available", self.available(cmd["id"]))
            want("version", it["version"])
        elif kind == "create":
            lines = []
            for l in b["items"]:
                it = self.items[l["item_id"]]
                it["reserved"] += l["quantity"]
                lines.append((l["item_id"], l["quantity"], it["price"], it["name"], it["category"]))
            amount = sum(q * p for _, q, p, _, _ in lines)
            oid = b.get("order_id") or answer.get("order_id")
            if "order_id" in b:
                want("order_id", b["order_id"])
            self.orders[oid] = Order(oid, b["user_id"], lines, amount, pos)
            self.created_at_pos.append(pos)
            want("status", "created")
            want("amount_cents", amount)
            want("version", 1)
        else:
            o = self.orders[cmd["id"]]
            u = self.users[o.user]
            if kind == "pay":
                u["balance"] -= o.amount
                self.paid_at_pos.append((pos, o.amount))
                o.status = "paid"
            elif kind == "ship":
                for item_id, q, _, _, _ in o.lines:
                    self.items[item_id]["reserved"] -= q
                    self.items[item_id]["sold"] += q
                o.status = "shipped"
            elif kind == "deliver":
                o.status = "delivered"
            elif kind == "cancel":
                for item_id, q, _, _, _ in o.lines:
                    self.items[item_id]["reserved"] -= q
                refunded = o.amount if o.status == "paid" else 0
                u["balance"] += refunded
                self.cancel_at_pos.append((pos, refunded))
                o.status = "cancelled"
            o.version += 1
            o.positions.append(pos)
            o.history.append((o.status, pos))
            want("status", o.status)
            want("version", o.version)
            want("order_id", o.oid)
        want("position", pos)
        return bad

    # -- read model (API.md section 5) ---------------------------------------------

    def expected_user(self, uid, at):
        """`at`: position -> RFC 3339 time string of that event (from the log)."""
        u = self.users[uid]
        mine = [o for o in self.orders.values() if o.user == uid]
        placed = [o for o in mine if o.status != "cancelled"]
        spent = [o for o in mine if o.status in ("paid", "shipped", "delivered")]
        total = sum(o.amount for o in spent)
        cats = {}
        for o in placed:
            for _, q, _, _, cat in o.lines:
                cats[cat] = cats.get(cat, 0) + q
        pref = None
        if cats:
            best = max(cats.values())
            pref = min(c for c, v in cats.items() if v == best)
        newest = max(mine, key=lambda o: o.created_pos) if mine else None
        return {"user_id": uid, "name": u["name"], "wallet_balance_cents": u["balance"],
                "order_count": len(placed), "total_spent_cents": total,
                "avg_order_value_cents": total // len(spent) if spent else 0,
                "last_order_at": at[newest.created_pos] if newest else None,
                "preferred_category": pref, "vip": total >= 100000}

    def expected_item(self, iid):
        it = self.items[iid]
        return {"item_id": iid, "name": it["name"], "category": it["category"], "price_cents": it["price"],
                "available": self.available(iid), "reserved": it["reserved"], "sold": it["sold"]}

    def expected_order(self, oid, at):
        o = self.orders[oid]
        return {"order_id": oid, "user_id": o.user, "status": o.status,
                "items": [{"item_id": i, "name": n, "quantity": q, "price_cents": p} for i, q, p, n, _ in o.lines],
                "amount_cents": o.amount, "created_at": at[o.created_pos], "updated_at": at[o.positions[-1]],
                "version": o.version}

    def expected_user_orders(self, uid, at):
        mine = sorted((o for o in self.orders.values() if o.user == uid), key=lambda o: -o.created_pos)
        return [{"order_id": o.oid, "status": o.status, "amount_cents": o.amount, "item_count": len(o.lines),
                 "created_at": at[o.created_pos]} for o in mine]

    def expected_daily(self, at):
        days = {}

        def day(pos):
            d = at[pos][:10]
            return days.setdefault(d, {"date": d, "orders_created": 0, "orders_paid": 0,
                                       "orders_cancelled": 0, "revenue_cents": 0})
        for pos in self.created_at_pos:
            day(pos)["orders_created"] += 1
        for pos, amount in self.paid_at_pos:
            d = day(pos)
            d["orders_paid"] += 1
            d["revenue_cents"] += amount
        for pos, refunded in self.cancel_at_pos:
            d = day(pos)
            d["orders_cancelled"] += 1
            d["revenue_cents"] -= refunded
        return [days[k] for k in sorted(days)]


def generate(rnd, shop):
    """Draws the next command for the current state: mostly valid, with a share of every
    failure kind (validation, not found, already exists, stock, funds, transitions). A few
    commands can fail for two reasons at once; Shop.predict accepts either answer then."""
    r = rnd.random()
    users = list(shop.users)
    items = list(shop.items)
    orders = list(shop.orders)
    seq = shop.head + rnd.randrange(1 << 30)
    if len(users) < 3 or r < 0.05:
        if users and rnd.random() < 0.1:
            return {"kind": "register", "path": "/api/users", "body": {"user_id": rnd.choice(users), "name": "dup"}}
        body = {"user_id": "mu-%d" % seq, "name": "User %d" % seq}
        if rnd.random() < 0.5:
            body["email"] = "u%d@example.com" % seq
        return {"kind": "register", "path": "/api/users", "body": body}
    if len(items) < 4 or r < 0.065:
        if items and rnd.random() < 0.1:
            iid = rnd.choice(items)
        else:
            iid = "mi-%d" % seq
        return {"kind": "add_item", "path": "/api/items",
                "body": {"item_id": iid, "name": "Item %s" % iid, "category": rnd.choice(CATEGORIES),
                         "price_cents": rnd.choice([99, 250, 1000, 4999, 12000])}}
    if r < 0.20:
        uid = rnd.choice(users) if rnd.random() > 0.05 else "ghost-%d" % seq
        return {"kind": "deposit", "id": uid, "path": "/api/users/%s/deposits" % uid,
                "body": {"amount_cents": rnd.choice([500, 2000, 10000, 50000, 150000]) if rnd.random() > 0.03 else 0}}
    if r < 0.32:
        iid = rnd.choice(items) if rnd.random() > 0.05 else "ghost-%d" % seq
        return {"kind": "restock", "id": iid, "path": "/api/items/%s/restock" % iid,
                "body": {"quantity": rnd.randint(5, 80)}}
    if r < 0.58:
        uid = rnd.choice(users)
        k = min(len(items), rnd.randint(1, 3))
        lines = [{"item_id": i, "quantity": rnd.randint(1, 4)} for i in rnd.sample(items, k)]
        body = {"user_id": uid, "items": lines}
        x = rnd.random()
        if x < 0.04:
            body["user_id"] = "ghost-%d" % seq
            lines[:] = [{"item_id": i, "quantity": 1} for i in items if shop.available(i) >= 1][:1]
            if not lines:
                lines.append({"item_id": items[0], "quantity": 1})
                body["user_id"] = uid
        elif x < 0.08:
            lines.append({"item_id": "ghost-%d" % seq, "quantity": 1})
        elif x < 0.14:
            lines[0]["quantity"] = min(1000, shop.available(lines[0]["item_id"]) + rnd.randint(1, 5))
        if rnd.random() < 0.5:
            body["order_id"] = "mo-%d" % seq
        if orders and rnd.random() < 0.03:
            body["order_id"] = rnd.choice(orders)
        return {"kind": "create", "path": "/api/orders", "body": body}
    kind = rnd.choice(["pay", "pay", "ship", "ship", "deliver", "cancel"])
    if not orders or rnd.random() < 0.03:
        oid = "ghost-%d" % seq
    else:
        # Mostly orders in the state the transition needs, sometimes any order.
        want = {"pay": "created", "ship": "paid", "deliver": "shipped", "cancel": "created"}[kind]
        fitting = [o for o in orders[-200:] if shop.orders[o].status == want]
        oid = rnd.choice(fitting) if fitting and rnd.random() < 0.8 else rnd.choice(orders)
    body = {}
    if kind == "cancel" and rnd.random() < 0.5:
        body["reason"] = "reason %d" % seq
    return {"kind": kind, "id": oid, "path": "/api/orders/%s/%s" % (oid, kind), "body": body}
