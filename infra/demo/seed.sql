-- Sample data for `agentgate dev`: a small shop with personal data worth protecting.
CREATE TABLE customers (
  id         integer PRIMARY KEY,
  name       text NOT NULL,
  email      text NOT NULL,
  ssn        text NOT NULL,
  card       text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
  id    integer PRIMARY KEY,
  name  text NOT NULL,
  price numeric(10, 2) NOT NULL
);

CREATE TABLE orders (
  id          integer PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers (id),
  product_id  integer NOT NULL REFERENCES products (id),
  quantity    integer NOT NULL,
  placed_at   timestamptz NOT NULL
);

INSERT INTO customers (id, name, email, ssn, card)
SELECT i,
       'Customer ' || i,
       'customer' || i || '@example.com',
       lpad((100 + i)::text, 3, '0') || '-' || lpad((i % 100)::text, 2, '0') || '-' || lpad((1000 + i)::text, 4, '0'),
       '4111 1111 1111 ' || lpad(i::text, 4, '0')
FROM generate_series(1, 100) AS i;

INSERT INTO products (id, name, price)
SELECT i, 'Product ' || i, round((5 + (i * 37) % 200)::numeric, 2)
FROM generate_series(1, 20) AS i;

INSERT INTO orders (id, customer_id, product_id, quantity, placed_at)
SELECT i, 1 + (i * 7) % 100, 1 + (i * 3) % 20, 1 + i % 5, timestamptz '2026-01-01' + (i || ' hours')::interval
FROM generate_series(1, 1000) AS i;

CREATE VIEW customer_orders AS
SELECT c.name, c.email, o.id AS order_id, p.name AS product, o.quantity
FROM orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.id = o.product_id;
