-- A small database for the compose quick start's sample PostgreSQL.
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());
INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 1000) AS g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric);
INSERT INTO orders (customer_id, total) SELECT (g % 1000) + 1, g FROM generate_series(1, 10000) AS g;
