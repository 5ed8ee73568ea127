/** Tests a relation name as the SQL analysis reports it ("orders", "public.orders") against one pattern. */
export type RelationMatcher = (relation: string) => boolean;

/**
 * Compiles a relation pattern: dot-separated parts, `*` matching any run of characters within a part. The pattern is
 * compared with as many trailing parts of the relation as it has itself, so `orders` matches `orders` and
 * `public.orders`, `audit.*` matches `audit.log` and `db.audit.log`, and `public.orders` does not match a bare
 * `orders` (its schema is not known).
 */
export function compileRelationPattern(pattern: string): RelationMatcher {
  const parts = pattern.split(".").map(compilePart);
  return (relation) => {
    const names = relation.split(".");
    if (names.length < parts.length) return false;
    const tail = names.slice(names.length - parts.length);
    return parts.every((part, i) => part.test(tail[i]!));
  };
}

function compilePart(part: string): RegExp {
  const body = part
    .split("*")
    .map((literal) => literal.replace(/[\\^$.|?+()[\]{}]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${body}$`, "s");
}
