// Compile-only stand-in (scripts/test-rn.sh): JSR-305's annotation, used by the
// codegen-generated spec (Maven only). Never shipped.
package javax.annotation;

public @interface Nonnull {}
