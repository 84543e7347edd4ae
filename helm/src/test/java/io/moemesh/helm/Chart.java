package io.moemesh.helm;

import com.marcnuri.helm.DryRun;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.InstallCommand;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import com.marcnuri.helm.UpgradeCommand;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.Yaml;

/**
 * The chart under test (helm/moemesh, the module's working directory is helm/) and its documented value sets:
 * the defaults and every file under moemesh/ci/ (each described in docs/kubernetes.md). Helm runs in-process
 * through helm-java; its native helm library is the Maven artifact com.marcnuri.helm-java:linux-amd64, so nothing
 * is downloaded at test time.
 */
final class Chart {
    static final Path DIR = Path.of("moemesh");
    static final String RELEASE = "moemesh";
    static final String NAMESPACE = "serving";
    /**
     * An empty cluster for {@link #template}: helm-java's template, unlike the CLI's {@code helm template}, leaves
     * Helm's dry-run option at "none", so the templates' {@code lookup} asks the cluster of the kubeconfig (the CLI's
     * returns nothing). KUBECONFIG (the surefire configuration names the file) points at this fake API server, whose
     * namespace holds nothing: lookup finds nothing, as in {@code helm template}, and Helm reaches no real cluster.
     */
    private static final FakeKubernetesApi EMPTY_CLUSTER = emptyClusterAtKubeconfig();

    private Chart() {
    }

    private static FakeKubernetesApi emptyClusterAtKubeconfig() {
        String kubeconfig = System.getenv("KUBECONFIG");
        // Only the file pom.xml names: run outside surefire (an IDE), KUBECONFIG may be the user's own, which must
        // never be overwritten with the fake cluster.
        if (kubeconfig == null || !Path.of(kubeconfig).toAbsolutePath().normalize()
                .endsWith(Path.of("target", "empty-cluster.kubeconfig"))) {
            throw new IllegalStateException("KUBECONFIG must name target/empty-cluster.kubeconfig, the file for the "
                    + "tests' empty fake cluster (helm/pom.xml sets it), got " + kubeconfig
                    + "; not writing over it");
        }
        FakeKubernetesApi api = FakeKubernetesApi.withoutRelease();
        try {
            Files.createDirectories(Path.of(kubeconfig).toAbsolutePath().getParent());
            Files.writeString(Path.of(kubeconfig), api.kubeconfig());
        } catch (IOException e) {
            api.close();
            throw new UncheckedIOException(e);
        }
        return api;
    }

    /** A documented value set: the defaults ({@code file} null) or a file of moemesh/ci/. */
    record ValueSet(String name, Path file) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<ValueSet> valueSets() {
        List<ValueSet> sets = new ArrayList<>();
        sets.add(new ValueSet("defaults", null));
        try (Stream<Path> files = Files.list(DIR.resolve("ci"))) {
            files.filter(f -> f.getFileName().toString().endsWith("-values.yaml")).sorted()
                    .forEach(f -> sets.add(new ValueSet(f.getFileName().toString(), f)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return sets;
    }

    /** {@code helm template} of the value set plus {@code --set} pairs; throws with Helm's message on failure. */
    static String template(ValueSet set, Map<String, String> overrides) {
        return template(DIR, set, overrides);
    }

    /** {@link #template(ValueSet, Map)} of the chart in {@code chartDir} (a changed copy). */
    static String template(Path chartDir, ValueSet set, Map<String, String> overrides) {
        TemplateCommand t = new Helm(chartDir).template().withName(RELEASE).withNamespace(NAMESPACE);
        if (set.file() != null) {
            t = t.withValuesFile(set.file());
        }
        for (Map.Entry<String, String> e : overrides.entrySet()) {
            t = t.set(e.getKey(), e.getValue());
        }
        return t.call();
    }

    /**
     * {@code helm upgrade --dry-run=server} of the chart in {@code chartDir} with {@code --set} pairs against
     * {@code api}: the templates' {@code lookup} sees the API's live objects. Returns what Helm prints (the release's
     * status and NOTES, not its manifest); throws with Helm's message on failure.
     */
    static String upgradeDryRun(Path chartDir, Map<String, String> overrides, FakeKubernetesApi api) {
        UpgradeCommand u = new Helm(chartDir).upgrade().withName(RELEASE).withNamespace(NAMESPACE)
                .withKubeConfigContents(api.kubeconfig()).withDryRunOption(DryRun.SERVER)
                .disableOpenApiValidation(); // the fake API serves no OpenAPI schema
        for (Map.Entry<String, String> e : overrides.entrySet()) {
            u = u.set(e.getKey(), e.getValue());
        }
        return u.call().getOutput();
    }

    /**
     * {@code helm install --dry-run=server} of the chart in {@code chartDir} with {@code --set} pairs against
     * {@code api}: a first install whose templates' {@code lookup} sees the API's live objects. Returns what Helm
     * prints; throws with Helm's message on failure.
     */
    static String installDryRun(Path chartDir, Map<String, String> overrides, FakeKubernetesApi api) {
        InstallCommand i = new Helm(chartDir).install().withName(RELEASE).withNamespace(NAMESPACE)
                .withKubeConfigContents(api.kubeconfig()).withDryRunOption(DryRun.SERVER)
                .disableOpenApiValidation(); // the fake API serves no OpenAPI schema
        for (Map.Entry<String, String> e : overrides.entrySet()) {
            i = i.set(e.getKey(), e.getValue());
        }
        return i.call().getOutput();
    }

    /** A copy of the chart under {@code workDir}, to change for one test. */
    static Path copy(Path workDir) throws IOException {
        Path copy = workDir.resolve("moemesh");
        copyTree(DIR, copy);
        return copy;
    }

    /** The chart's values.yaml with the value set merged in: what the templates see. */
    static Map<String, Object> values(ValueSet set) {
        try {
            Yaml yaml = new Yaml();
            Map<String, Object> values = yaml.load(Files.readString(DIR.resolve("values.yaml")));
            return set.file() == null ? values : merge(values, yaml.load(Files.readString(set.file())));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A value by its dotted path, e.g. {@code expertService.gpus}. */
    @SuppressWarnings("unchecked")
    static Object value(Map<String, Object> values, String path) {
        Object v = values;
        for (String key : path.split("\\.")) {
            v = ((Map<String, Object>) v).get(key);
        }
        return v;
    }

    static RenderedChart render(ValueSet set) {
        return RenderedChart.parse(template(set, Map.of()));
    }

    /**
     * {@code helm lint --strict} of the chart with the value set. helm-java's lint takes no values file, so the
     * set is merged into a copy of the chart's values.yaml (Helm's own merge: maps deep, everything else
     * replaced) and the copy is linted.
     */
    static LintResult lint(ValueSet set, Path workDir) throws IOException {
        if (set.file() == null) {
            return new Helm(DIR).lint().strict().call();
        }
        Path copy = workDir.resolve("moemesh");
        copyTree(DIR, copy);
        DumperOptions options = new DumperOptions();
        options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        Files.writeString(copy.resolve("values.yaml"), new Yaml(options).dump(values(set)));
        return new Helm(copy).lint().strict().call();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> merge(Map<String, Object> base, Map<String, Object> overlay) {
        Map<String, Object> out = new LinkedHashMap<>(base);
        overlay.forEach((k, v) -> {
            if (v instanceof Map<?, ?> m && out.get(k) instanceof Map<?, ?> b) {
                out.put(k, merge((Map<String, Object>) b, (Map<String, Object>) m));
            } else {
                out.put(k, v);
            }
        });
        return out;
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> paths = Files.walk(from)) {
            for (Path p : (Iterable<Path>) paths::iterator) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target);
                }
            }
        }
    }
}
