// Test helpers for other packages (the proxy's enforcement tests): meant for a `./testing` subpath export.
export { FIXTURE_SCHEMA, STATEMENT_FIXTURES, type StatementFixture } from "./fixtures/statements.ts";
