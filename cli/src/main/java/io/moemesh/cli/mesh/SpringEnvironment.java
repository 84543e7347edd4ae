package io.moemesh.cli.mesh;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * The environment variables a Spring Boot service reads a property from, so that the launcher sees a setting the
 * way the service will. Spring Boot's relaxed binding (SystemEnvironmentPropertyMapper, Boot 4.0) tries, in this
 * order: the property's words with their dashes dropped ({@code MOEMESH_GATEWAY_SHUTDOWNGRACE} for
 * {@code moemesh.gateway.shutdown-grace}), then with dashes as underscores ({@code MOEMESH_GATEWAY_SHUTDOWN_GRACE}),
 * then both in lower case; the first one the environment has wins, whatever the others say. Reading only the
 * second name would miss a caller's {@code MOEMESH_GATEWAY_SHUTDOWNGRACE=5m}, and, with both set, take the value the
 * service ignores.
 */
final class SpringEnvironment {

    private SpringEnvironment() {
    }

    /**
     * The variable names Spring Boot reads {@code property} from, in its order.
     *
     * @param property a property name in its canonical form: lower case, words joined by dashes, elements by dots
     */
    static List<String> names(String property) {
        String[] elements = property.split("\\.");
        String dashesDropped = String.join("_", Arrays.stream(elements).map(e -> e.replace("-", ""))
                .toList());
        String dashesAsUnderscores = String.join("_", Arrays.stream(elements).map(e -> e.replace('-', '_'))
                .toList());
        List<String> names = new ArrayList<>(4);
        for (String n : List.of(dashesDropped.toUpperCase(Locale.ROOT), dashesAsUnderscores.toUpperCase(Locale.ROOT),
                dashesDropped.toLowerCase(Locale.ROOT), dashesAsUnderscores.toLowerCase(Locale.ROOT))) {
            if (!names.contains(n)) {
                names.add(n);
            }
        }
        return List.copyOf(names);
    }

    /** The variable Spring Boot takes {@code property} from in {@code env}, with its value; empty when none is set. */
    static Optional<Map.Entry<String, String>> find(Map<String, String> env, String property) {
        for (String name : names(property)) {
            String value = env.get(name);
            if (value != null) {
                return Optional.of(Map.entry(name, value));
            }
        }
        return Optional.empty();
    }

    /** The value Spring Boot binds to {@code property} from {@code env}; empty when no name of it is set. */
    static Optional<String> value(Map<String, String> env, String property) {
        return find(env, property).map(Map.Entry::getValue);
    }

    /**
     * Sets {@code property} to {@code value} under its conventional name (dashes as underscores, upper case), after
     * removing every other name of it: one of those would win over the conventional name.
     */
    static void put(Map<String, String> env, String property, String value) {
        remove(env, property);
        env.put(conventionalName(property), value);
    }

    /** {@link #put} unless some name of {@code property} is set already (the caller's setting stands). */
    static void putIfAbsent(Map<String, String> env, String property, String value) {
        if (find(env, property).isEmpty()) {
            env.put(conventionalName(property), value);
        }
    }

    /** Removes every name of {@code property}. */
    static void remove(Map<String, String> env, String property) {
        names(property).forEach(env::remove);
    }

    /** {@code MOEMESH_KVCACHE_DRAM_BYTES} for {@code moemesh.kvcache.dram-bytes}: the name the docs and the chart use. */
    static String conventionalName(String property) {
        return property.replace('.', '_').replace('-', '_').toUpperCase(Locale.ROOT);
    }
}
