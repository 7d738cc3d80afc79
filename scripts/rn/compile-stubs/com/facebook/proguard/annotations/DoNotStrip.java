// Compile-only stand-in (scripts/test-rn.sh): the annotation the codegen-generated spec uses,
// from fbjni's proguard-annotations artifact (Maven only). Never shipped.
package com.facebook.proguard.annotations;

public @interface DoNotStrip {}
