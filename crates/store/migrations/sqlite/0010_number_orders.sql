-- The operator's pool of numbers not yet ordered (`admin add-numbers --pool`), with what
-- SearchAvailablePhoneNumbers filters by, and the orders that moved numbers from the pool
-- into the inventory (CreatePhoneNumberOrder).
CREATE TABLE number_pool (
    e164 TEXT PRIMARY KEY,
    country TEXT NOT NULL,
    number_type TEXT NOT NULL,
    area_code TEXT NOT NULL,
    state TEXT NOT NULL,
    city TEXT NOT NULL
);
CREATE INDEX number_pool_search ON number_pool(country, number_type, area_code);
CREATE TABLE phone_number_orders (
    id TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX phone_number_orders_created ON phone_number_orders(created_ms, id);
