"""The sandbox payment provider: answers like a card acquirer would, offline, from test card numbers.

Its memory (the answer to each idempotency key, the money it moved) lives in Redis, not in the app
process and not in our database: every worker and app server sees the same memory, a restart
keeps it, and a unit of work that rolls back cannot undo a charge, just as a real provider's state
is outside ours. Redis is there already (jobs, limits, live seat maps), and SET-if-absent in one
script makes "the first answer to a key wins" hold across processes. Keys are forgotten after
PAYMENT_SANDBOX_MEMORY_SECONDS (a day), as a real provider forgets idempotency keys.
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal

import redis

from app.models import PaymentResult
from app.services.payments_provider import ProviderResult

# The documented test numbers (README, "Payments (sandbox)").
CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_PROVIDER_ERROR = "4000000000000119"
CARD_PROVIDER_TIMEOUT = "4000000000000259"
CARD_REFUND_FAILS = "4000000000005126"
CHARGED_CARDS = (CARD_SUCCEEDS, CARD_PROVIDER_TIMEOUT, CARD_REFUND_FAILS)

# Returns {1, the answer already given to KEYS[1]}, or stores ARGV[1] as that answer (and, if money
# moved, in the ledger KEYS[2]; a charge whose refunds are refused goes into the set KEYS[3]) and
# returns {0, ARGV[1]}.
REMEMBER_ONCE = """
local known = redis.call('GET', KEYS[1])
if known then return {1, known} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] == '1' then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return {0, ARGV[1]}
"""


def provider_reference(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class SandboxCardProvider:
    """The sandbox provider (PAYMENT_PROVIDER=sandbox). `charges` and `refunds` list the money it moved.

    Two knobs for fault tests, per process: `charge_delay_seconds` (it answers a charge that much
    later, as a slow acquirer would) and `reachable` (False: every call fails with ConnectionError
    before reaching it).
    """

    LEDGER_LENGTH = 100_000

    def __init__(self, redis_url: str, *, namespace: str, memory_seconds: int = 86_400, charge_delay_seconds=0.0):
        self.redis_url = redis_url
        self.namespace = namespace
        self.memory_seconds = memory_seconds
        self.charge_delay_seconds = charge_delay_seconds
        self.reachable = True
        self._client = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            pool = redis.BlockingConnectionPool.from_url(
                self.redis_url, max_connections=50, timeout=2, socket_connect_timeout=1, socket_timeout=2
            )
            self._client = redis.Redis(connection_pool=pool)
        return self._client

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _call(self, operation):
        """Run a Redis operation; Redis down is the provider down (ConnectionError, an OSError)."""
        if not self.reachable:
            raise ConnectionError("the sandbox payment provider cannot be reached")
        try:
            return operation(self.client)
        except redis.RedisError as error:
            raise ConnectionError(f"the sandbox payment provider cannot be reached: {error}") from error

    def _remember_once(
        self, idempotency_key: str, answer: ProviderResult, ledger: str, refusing: str = ""
    ) -> tuple[ProviderResult, bool]:
        """The first answer given to this key, and whether it was given before this call."""
        moved = answer.result == PaymentResult.SUCCEEDED
        keys = [self._key("answer", idempotency_key), self._key(ledger), self._key("refusing-refunds")]
        args = [json.dumps(answer.to_dict()), self.memory_seconds, "1" if moved else "0", refusing, self.LEDGER_LENGTH]
        known, stored = self._call(lambda client: client.eval(REMEMBER_ONCE, len(keys), *keys, *args))
        return ProviderResult.from_dict(json.loads(stored)), bool(known)

    def charge(self, card_number: str, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Charge the card once per key; the first time, raises TimeoutError after charging CARD_PROVIDER_TIMEOUT."""
        if self.charge_delay_seconds:
            time.sleep(self.charge_delay_seconds)
        answer = self._answer_charge(card_number, amount)
        refusing = answer.reference if card_number == CARD_REFUND_FAILS else ""
        answer, known = self._remember_once(idempotency_key, answer, "charges", refusing)
        if card_number == CARD_PROVIDER_TIMEOUT and not known:
            raise TimeoutError("the sandbox card provider charged the card, but its answer was lost")
        return answer

    @staticmethod
    def _answer_charge(card_number: str, amount: Decimal) -> ProviderResult:
        if card_number in CHARGED_CARDS:
            result, reason = PaymentResult.SUCCEEDED, None
        elif card_number == CARD_PROVIDER_ERROR:
            result, reason = PaymentResult.ERROR, "The card provider had an internal error."
        elif card_number == CARD_DECLINED:
            result, reason = PaymentResult.DECLINED, "The card was declined: insufficient funds."
        else:
            result, reason = PaymentResult.DECLINED, "The card was declined: unknown test card."
        return ProviderResult(result, provider_reference("ch"), reason, card_number[-4:], amount)

    def refund(self, charge_reference: str | None, amount: Decimal, *, idempotency_key: str) -> ProviderResult:
        """Refund part or all of a charge once per key (charges it does not know refund fine)."""
        refused = charge_reference is not None and self._call(
            lambda client: client.sismember(self._key("refusing-refunds"), charge_reference)
        )
        if refused:
            answer = ProviderResult(
                PaymentResult.DECLINED, provider_reference("re"), "The card's bank refused the refund.", amount=amount
            )
        else:
            answer = ProviderResult(PaymentResult.SUCCEEDED, provider_reference("re"), amount=amount)
        return self._remember_once(idempotency_key, answer, "refunds")[0]

    def find_payment(self, idempotency_key: str) -> ProviderResult | None:
        """The answer given to this key, or None if no request with it reached the sandbox."""
        stored = self._call(lambda client: client.get(self._key("answer", idempotency_key)))
        return None if stored is None else ProviderResult.from_dict(json.loads(stored))

    def _ledger(self, name: str) -> list[ProviderResult]:
        stored = self._call(lambda client: client.lrange(self._key(name), 0, -1))
        return [ProviderResult.from_dict(json.loads(item)) for item in stored]

    @property
    def charges(self) -> list[ProviderResult]:
        """The charges that moved money, oldest first."""
        return self._ledger("charges")

    @property
    def refunds(self) -> list[ProviderResult]:
        """The refunds that moved money, oldest first."""
        return self._ledger("refunds")


def from_app(app) -> SandboxCardProvider:
    """The sandbox provider on the app's Redis (PAYMENT_SANDBOX_REDIS_URL, else REDIS_URL)."""
    return SandboxCardProvider(
        app.config.get("PAYMENT_SANDBOX_REDIS_URL") or app.config["REDIS_URL"],
        namespace=app.config.get("PAYMENT_SANDBOX_NAMESPACE", "stagepass:sandbox-payments"),
        memory_seconds=int(app.config.get("PAYMENT_SANDBOX_MEMORY_SECONDS", 86_400)),
        charge_delay_seconds=float(app.config.get("PAYMENT_SANDBOX_DELAY_SECONDS", 0)),
    )
