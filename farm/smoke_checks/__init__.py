"""Scripts that run inside the target container; they use only the standard library and the
package under test, and print one JSON line with their checks."""
