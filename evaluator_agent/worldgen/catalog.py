"""The service catalog synthetic worlds draw from: realistic names, teams, stacks and calls.

Each domain is a team's slice of a web shop. A world takes whole domains (edge first, then
others in a seeded order) until it has the services it needs, keeping only the edges whose
both ends are present. Names never spell a failure mechanism: a redis is ``catalog-redis``,
not ``catalog-cache``, so reading the service list does not give an answer away.

Roles map to world kinds: api -> service, worker (Kafka consumer) -> service, gateway ->
gateway, db -> database, redis -> cache, topic -> queue, external -> external, cron -> job.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    name: str
    role: str  # api | worker | gateway | db | redis | topic | external | cron
    language: str  # java | go | python | node | envoy | postgres | mysql | elasticsearch | redis | kafka | ""
    calls: tuple[str, ...] = ()
    description: str = ""
    host: str = ""  # external hostname, for externals


@dataclass(frozen=True)
class Domain:
    team: str
    namespace: str
    entries: tuple[Entry, ...] = field(default_factory=tuple)


def _domain(team: str, namespace: str, table: str) -> Domain:
    """Parse a table of ``name | role | language | calls | description [| host]`` lines."""
    entries = []
    for line in table.strip().splitlines():
        name, role, lang, calls, desc, *host = (x.strip() for x in line.split("|"))
        entries.append(
            Entry(
                name,
                role,
                "" if lang == "-" else lang,
                tuple(calls.split()) if calls != "-" else (),
                desc,
                host[0] if host else "",
            )
        )
    return Domain(team, namespace, tuple(entries))


# fmt: off
EDGE = _domain("edge", "edge", """
api-gateway | gateway | envoy | web-bff mobile-bff partner-api | Envoy edge proxy in front of every public API
web-bff | api | node | checkout cart catalog search accounts auth recommendations orders reviews wishlist promotions order-history user-profile content-api subscriptions store-locator gift-cards returns customer-chat sponsored-products | Backend-for-frontend of the web shop
mobile-bff | api | node | checkout cart catalog search accounts auth orders loyalty recommendations notifications-api order-history subscriptions | Backend-for-frontend of the iOS and Android apps
partner-api | api | go | orders inventory catalog auth | Public REST API for marketplace partners
""")

DOMAINS: tuple[Domain, ...] = (
    _domain("identity", "identity", """
    auth | api | go | sessions-redis accounts users-db | OAuth2 / session token service
    accounts | api | java | users-db sessions-redis notifications-api audit-log | Customer accounts
    user-profile | api | python | users-db | Profile, addresses and preferences
    users-db | db | postgres | - | PostgreSQL 15, customer accounts
    sessions-redis | redis | redis | - | Redis 7 session store
    """),
    _domain("checkout", "checkout", """
    checkout | api | java | cart pricing payments-api orders tax-calculator inventory promotions shipping fraud-detection | Checkout orchestration
    cart | api | go | cart-redis catalog pricing inventory | Shopping cart
    cart-redis | redis | redis | - | Redis 7, carts
    tax-calculator | api | java | avalara-api tax-redis | Sales tax quotes
    tax-redis | redis | redis | - | Redis 7, tax quote cache
    avalara-api | external | - | - | Avalara AvaTax | rest.avatax.com
    """),
    _domain("payments", "payments", """
    payments-api | api | java | payment-processor ledger payments-db fraud-detection payment-events | Payment intents and captures
    payment-processor | api | java | stripe-api adyen-api payments-db | PSP routing
    ledger | api | java | ledger-db ledger-events | Double-entry ledger
    payments-db | db | postgres | - | PostgreSQL 15, payment intents
    ledger-db | db | postgres | - | PostgreSQL 15, ledger entries
    stripe-api | external | - | - | Stripe | api.stripe.com
    adyen-api | external | - | - | Adyen | checkout-live.adyen.com
    payment-events | topic | kafka | - | Kafka topic payment-events
    ledger-events | topic | kafka | - | Kafka topic ledger-events
    ledger-writer | worker | java | ledger-events ledger-db | Consumes ledger-events into reporting tables
    billing-reconciliation | cron | python | payments-db ledger-db | Nightly PSP reconciliation
    """),
    _domain("orders", "orders", """
    orders | api | java | orders-db order-events inventory payments-api | Order lifecycle
    orders-db | db | postgres | - | PostgreSQL 15, orders
    order-events | topic | kafka | - | Kafka topic order-events
    order-history | api | python | orders-db | Order history for customers
    fulfillment-worker | worker | go | order-events fulfillment notifications-api | Consumes order-events and creates fulfillment requests
    fulfillment | api | go | shipping fulfillment-db | Warehouse fulfillment requests
    fulfillment-db | db | postgres | - | PostgreSQL 15, fulfillment
    order-export | cron | python | orders-db | Hourly order export for finance
    """),
    _domain("catalog", "catalog", """
    catalog | api | go | catalog-db catalog-redis pricing media-api catalog-events | Product catalog
    catalog-db | db | postgres | - | PostgreSQL 15, products
    catalog-redis | redis | redis | - | Redis 7, product documents
    pricing | api | go | pricing-redis pricing-db | Prices and currency conversion
    pricing-db | db | postgres | - | PostgreSQL 15, price books
    pricing-redis | redis | redis | - | Redis 7, price lookups
    media-api | api | node | image-resizer | Product images
    image-resizer | api | go | - | On-the-fly image resizing
    catalog-events | topic | kafka | - | Kafka topic catalog-events
    catalog-sync | cron | python | catalog-db | Supplier feed import
    """),
    _domain("search", "search", """
    search | api | java | search-es catalog search-redis | Product search
    search-es | db | elasticsearch | - | Elasticsearch 8 product index
    search-redis | redis | redis | - | Redis 7, query results
    search-indexer | worker | java | catalog-events search-es | Consumes catalog-events into the index
    autocomplete | api | go | search-es | Search suggestions
    """),
    _domain("ml", "ml", """
    recommendations | api | python | feature-store catalog recs-model | Product recommendations
    feature-store | api | go | feature-redis | Online feature store
    recs-model | api | python | - | Model server (TorchServe)
    feature-redis | redis | redis | - | Redis 7, online features
    clickstream-ingest | api | go | clickstream | Clickstream collector
    clickstream | topic | kafka | - | Kafka topic clickstream
    features-builder | worker | python | clickstream feature-redis | Consumes clickstream into features
    """),
    _domain("inventory", "inventory", """
    inventory | api | java | inventory-db stock-reservation inventory-events | Stock levels
    inventory-db | db | postgres | - | PostgreSQL 15, stock
    stock-reservation | api | go | inventory-db reservations-redis | Stock reservations at checkout
    reservations-redis | redis | redis | - | Redis 7, reservations
    inventory-events | topic | kafka | - | Kafka topic inventory-events
    warehouse-sync | cron | python | inventory-db wms-partner-api | Warehouse stock sync
    wms-partner-api | external | - | - | Warehouse management partner | api.wms-partner.example.net
    """),
    _domain("logistics", "logistics", """
    shipping | api | go | shippo-api fedex-api address-validation shipping-db shipment-events | Shipping quotes and labels
    shipping-db | db | postgres | - | PostgreSQL 15, shipments
    shippo-api | external | - | - | Shippo | api.goshippo.com
    fedex-api | external | - | - | FedEx | apis.fedex.com
    address-validation | api | python | smarty-api | Address validation
    smarty-api | external | - | - | Smarty address API | us-street.api.smarty.com
    shipment-events | topic | kafka | - | Kafka topic shipment-events
    tracking-worker | worker | go | shipment-events shipping-db notifications-api | Consumes carrier tracking updates
    delivery-estimates | api | python | shipping-db | Delivery date estimates
    """),
    _domain("notifications", "notifications", """
    notifications-api | api | go | notification-events notifications-db template-service | Notification requests
    notification-events | topic | kafka | - | Kafka topic notification-events
    notification-worker | worker | python | notification-events sendgrid-api twilio-api fcm-api template-service | Sends email, SMS and push
    notifications-db | db | postgres | - | PostgreSQL 15, notifications
    template-service | api | node | - | Message templates
    sendgrid-api | external | - | - | SendGrid | api.sendgrid.com
    twilio-api | external | - | - | Twilio | api.twilio.com
    fcm-api | external | - | - | Firebase Cloud Messaging | fcm.googleapis.com
    email-digest | cron | python | notifications-api | Daily email digest
    """),
    _domain("risk", "risk", """
    fraud-detection | api | python | risk-features maxmind-api fraud-redis | Fraud scoring
    risk-features | api | go | risk-db | Risk feature lookups
    risk-db | db | postgres | - | PostgreSQL 15, risk signals
    maxmind-api | external | - | - | MaxMind minFraud | minfraud.maxmind.com
    fraud-redis | redis | redis | - | Redis 7, velocity counters
    chargeback-worker | worker | java | payment-events risk-db | Consumes payment-events for disputes
    """),
    _domain("growth", "growth", """
    promotions | api | node | promotions-db pricing | Coupons and promotions
    promotions-db | db | postgres | - | PostgreSQL 15, promotions
    loyalty | api | java | loyalty-db orders | Loyalty points
    loyalty-db | db | mysql | - | MySQL 8, loyalty
    referrals | api | python | loyalty accounts | Referral program
    campaigns | api | python | campaigns-db notifications-api | Marketing campaigns
    campaigns-db | db | postgres | - | PostgreSQL 15, campaigns
    wishlist | api | go | catalog wishlist-redis | Wishlists
    wishlist-redis | redis | redis | - | Redis 7, wishlists
    reviews | api | python | reviews-db catalog | Product reviews
    reviews-db | db | postgres | - | PostgreSQL 15, reviews
    content-api | api | node | contentful-api | CMS content
    contentful-api | external | - | - | Contentful | cdn.contentful.com
    """),
    _domain("platform", "platform", """
    audit-log | api | java | audit-events | Audit trail
    audit-events | topic | kafka | - | Kafka topic audit-events
    audit-archiver | worker | go | audit-events gcs-api | Archives audit events
    gcs-api | external | - | - | Google Cloud Storage | storage.googleapis.com
    experiments-api | api | go | experiments-redis | A/B experiments and toggles
    experiments-redis | redis | redis | - | Redis 7, experiment assignments
    rate-limiter | api | go | ratelimit-redis | Global rate limiting
    ratelimit-redis | redis | redis | - | Redis 7, token buckets
    geo-ip | api | go | maxmind-api | IP geolocation
    config-server | api | java | - | Spring Cloud Config
    """),
    _domain("support", "support", """
    support-portal | api | node | support-api | Agent support console
    support-api | api | java | zendesk-api orders accounts support-db | Support tickets
    support-db | db | postgres | - | PostgreSQL 15, tickets
    zendesk-api | external | - | - | Zendesk | acme.zendesk.com
    """),
    _domain("merchant", "merchant", """
    merchant-portal | api | node | merchant-api | Seller portal
    merchant-api | api | java | merchant-db catalog payouts | Seller accounts and listings
    merchant-db | db | postgres | - | PostgreSQL 15, sellers
    payouts | api | java | ledger stripe-api payouts-db | Seller payouts
    payouts-db | db | postgres | - | PostgreSQL 15, payouts
    payout-scheduler | cron | java | payouts | Daily payout batch
    """),
    _domain("subscriptions", "billing", """
    subscriptions | api | java | subscriptions-db billing-api | Subscription plans
    subscriptions-db | db | postgres | - | PostgreSQL 15, subscriptions
    billing-api | api | java | invoices-db invoice-renderer billing-events stripe-api | Invoicing
    invoices-db | db | postgres | - | PostgreSQL 15, invoices
    invoice-renderer | api | java | gcs-api | PDF invoice rendering
    billing-events | topic | kafka | - | Kafka topic billing-events
    dunning-worker | worker | python | billing-events notifications-api | Failed payment retries
    renewals | cron | java | subscriptions billing-api | Subscription renewals
    """),
    _domain("data", "data", """
    analytics-ingest | api | go | clickstream | Analytics event collector
    etl-orders | cron | python | orders-db warehouse-bq | Orders ETL to the warehouse
    warehouse-bq | external | - | - | BigQuery | bigquery.googleapis.com
    reporting-api | api | python | reporting-db | Internal reporting
    reporting-db | db | postgres | - | PostgreSQL 15, reporting
    reporting-jobs | topic | kafka | - | Kafka topic reporting-jobs
    report-builder | worker | python | reporting-jobs reporting-db | Builds scheduled reports
    """),
    _domain("localization", "i18n", """
    currency-rates | api | go | fx-rates-api rates-redis | FX rates
    fx-rates-api | external | - | - | Open Exchange Rates | openexchangerates.org
    rates-redis | redis | redis | - | Redis 7, FX rates
    translations | api | node | translations-db | UI string translations
    translations-db | db | postgres | - | PostgreSQL 15, translations
    """),
    _domain("stores", "stores", """
    store-locator | api | go | stores-db maps-api | Physical store finder
    stores-db | db | postgres | - | PostgreSQL 15, stores
    maps-api | external | - | - | Google Maps Platform | maps.googleapis.com
    gift-cards | api | java | giftcards-db ledger | Gift card balances
    giftcards-db | db | postgres | - | PostgreSQL 15, gift cards
    returns | api | java | returns-db orders shipping payments-api | Returns and refunds
    returns-db | db | postgres | - | PostgreSQL 15, returns
    customer-chat | api | node | chat-redis support-api | Live chat
    chat-redis | redis | redis | - | Redis 7, chat sessions
    """),
    _domain("ads", "ads", """
    sponsored-products | api | python | ads-db catalog ads-events | Sponsored product placements
    ads-db | db | postgres | - | PostgreSQL 15, campaigns and bids
    ads-events | topic | kafka | - | Kafka topic ads-events
    ads-budget-worker | worker | go | ads-events ads-db | Consumes ad impressions into budgets
    """),
)
# fmt: on

# People and words for events; deploy authors look like corporate handles.
AUTHORS = (
    "alice.chen",
    "bob.martins",
    "carla.diaz",
    "deepak.rao",
    "elena.petrova",
    "farid.haddad",
    "grace.kim",
    "hiro.tanaka",
    "ines.moreau",
    "jamal.wright",
    "kasia.nowak",
    "liam.obrien",
    "mei.lin",
    "nikhil.shah",
    "olga.ivanova",
    "pablo.ruiz",
    "quinn.taylor",
    "rosa.bianchi",
    "sam.okafor",
    "tara.singh",
)


def vendor_of(name: str) -> str:
    """The description of the catalog entry ``name`` (a partner's company name), or the name."""
    for d in DOMAINS:
        for e in d.entries:
            if e.name == name:
                return e.description
    return name


def db_table(db: str) -> str:
    """The main table of database ``db``, named after it (``orders-db`` -> ``orders``)."""
    return db.removesuffix("-db").replace("-", "_")
