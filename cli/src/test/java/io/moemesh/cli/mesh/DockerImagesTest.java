package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * docker/Dockerfile builds one image per service by extracting that service's Spring Boot jar into layers: the jar
 * it copies must be the one the module's build repackages as the executable jar. A module whose plain jar stays its
 * artifact (the CLI uses it as a library) attaches the executable jar with a classifier; copying the plain jar there
 * fails the image build ({@code jarmode=tools} finds no Spring Boot layers in it).
 */
class DockerImagesTest {
    private static final Path ROOT = Path.of("..");

    @ParameterizedTest
    @ValueSource(strings = {"gateway", "expert-service", "router-service", "kvcache-service"})
    void eachImage_extractsItsModulesExecutableJar(String module) throws IOException {
        String dockerfile = Files.readString(ROOT.resolve("docker/Dockerfile"));
        Matcher copy = Pattern.compile("FROM \\$\\{JAVA_IMAGE} AS " + Pattern.quote(module)
                + "-layers\\n(?:.*\\n)*?COPY (\\S+) app\\.jar\\n").matcher(dockerfile);
        assertThat(copy.find()).as("the %s-layers stage copies a jar", module).isTrue();
        assertThat(dockerfile).contains("FROM runtime AS " + module + "\n");

        String pom = Files.readString(ROOT.resolve(module).resolve("pom.xml"));
        Matcher finalName = Pattern.compile("<finalName>([^<]+)</finalName>").matcher(pom);
        assertThat(finalName.find()).as(module + " names its jar").isTrue();
        int repackage = pom.indexOf("<goal>repackage</goal>");
        assertThat(repackage).as(module + " repackages a Spring Boot jar").isPositive();
        Matcher classifier = Pattern.compile("<classifier>([^<]+)</classifier>")
                .matcher(pom.substring(repackage, pom.indexOf("</execution>", repackage)));
        String executable = finalName.group(1) + (classifier.find() ? "-" + classifier.group(1) : "") + ".jar";

        assertThat(copy.group(1)).isEqualTo(module + "/target/" + executable);
    }
}
