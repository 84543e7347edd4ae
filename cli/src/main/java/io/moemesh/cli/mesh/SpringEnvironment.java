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
 * service ignores. A {@code -D} option of the service's command ({@code up --jvm-option}) comes before all of them
 * ({@link #find(List, Map, String)}).
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

    /**
     * Where a service started with the arguments {@code javaArgs} (its command after the java binary) and the
     * environment {@code env} takes {@code property} from, with its value: a {@code -D} option of those arguments
     * ({@link #systemProperty}; Spring Boot's system properties come before its environment), else its environment
     * ({@link #find(Map, String)}); empty when neither sets it. The name is the option
     * ({@code -Dmoemesh.kvcache.dram-bytes}) or the variable.
     */
    static Optional<Map.Entry<String, String>> find(List<String> javaArgs, Map<String, String> env, String property) {
        Optional<Map.Entry<String, String>> option = systemProperty(javaArgs, property);
        return option.isPresent() ? option : find(env, property);
    }

    /** The value {@link #find(List, Map, String)} finds for the recorded service {@code s}. */
    static Optional<String> value(MeshState.Service s, String property) {
        List<String> command = s.command();
        return find(command.subList(Math.min(1, command.size()), command.size()), s.environment(), property)
                .map(Map.Entry::getValue);
    }

    /**
     * The {@code -D} option among the arguments of the java launcher {@code javaArgs} (its options: those before
     * {@code -jar} or the main class) that Spring Boot binds to {@code property}, as {@code -DNAME} with its value.
     * Spring matches a system property's name element by element ignoring case and every character but letters and
     * digits, so {@code -Dmoemesh.gateway.shutdownGrace}, {@code -Dmoemesh.gateway.shutdown_grace} and
     * {@code -DMOEMESH.GATEWAY.SHUTDOWN-GRACE} set {@code moemesh.gateway.shutdown-grace} too; the canonical name
     * wins over the others. Between two other spellings Spring's pick follows the order of the JVM's property table;
     * this takes the last one given. Of one name given twice the JVM keeps the last.
     */
    static Optional<Map.Entry<String, String>> systemProperty(List<String> javaArgs, String property) {
        String wanted = relaxed(property);
        Map.Entry<String, String> canonical = null;
        Map.Entry<String, String> other = null;
        for (int i = 0; i < javaArgs.size(); i++) {
            String arg = javaArgs.get(i);
            if (arg.equals("-jar") || !arg.startsWith("-")) {
                break; // the jar or the main class: what follows are the program's arguments
            }
            if (OPTIONS_WITH_VALUE.contains(arg)) {
                i++;
                continue;
            }
            if (!arg.startsWith("-D")) {
                continue;
            }
            int eq = arg.indexOf('=');
            String name = eq < 0 ? arg.substring(2) : arg.substring(2, eq);
            Map.Entry<String, String> option = Map.entry("-D" + name, eq < 0 ? "" : arg.substring(eq + 1));
            if (name.equals(property)) {
                canonical = option;
            } else if (relaxed(name).equals(wanted)) {
                other = option;
            }
        }
        return Optional.ofNullable(canonical != null ? canonical : other);
    }

    /** The java launcher's options whose value is the next argument (it would otherwise end the options). */
    private static final List<String> OPTIONS_WITH_VALUE = List.of("-cp", "-classpath", "--class-path", "-p",
            "--module-path", "--upgrade-module-path", "--add-modules", "--limit-modules", "--add-reads",
            "--add-exports", "--add-opens", "--patch-module", "--enable-native-access");

    /** A property name as Spring compares a system property's: per element, lower case, letters and digits only. */
    private static String relaxed(String name) {
        return Arrays.stream(name.split("\\.", -1))
                .map(e -> e.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9]", ""))
                .reduce((a, b) -> a + "." + b).orElse("");
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
