package io.moemesh.helm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.springframework.boot.actuate.autoconfigure.web.server.ManagementServerProperties;
import org.springframework.boot.context.properties.bind.BindContext;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.BindHandler;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.bind.PropertySourcesPlaceholdersResolver;
import org.springframework.boot.context.properties.source.ConfigurationProperty;
import org.springframework.boot.context.properties.source.ConfigurationPropertyName;
import org.springframework.boot.context.properties.source.ConfigurationPropertySources;
import org.springframework.boot.convert.ApplicationConversionService;
import org.springframework.boot.env.YamlPropertySourceLoader;
import org.springframework.boot.origin.PropertySourceOrigin;
import org.springframework.boot.web.server.autoconfigure.ServerProperties;
import org.springframework.core.env.MutablePropertySources;
import org.springframework.core.env.PropertiesPropertySource;
import org.springframework.core.env.PropertySource;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.env.SystemEnvironmentPropertySource;
import org.springframework.core.io.FileSystemResource;

/**
 * One service's typed settings, bound the way Spring Boot binds them at startup: its application.yaml under the
 * environment a container gets, through Spring Boot's own {@link Binder} with relaxed binding
 * ({@code MOEMESH_KVCACHE_MODEL_DIRS} = {@code moemesh.kvcache.model-dirs}), its conversion service and placeholder
 * resolution. The records validate themselves in their compact constructors, so binding is also validating. Which
 * environment variables a binding read is recorded: a variable nothing read is a name no setting has.
 *
 * <p>The settings classes are named, not imported: they come from the services' target/classes at test time (the
 * module's pom says why), not from the compile class path.
 */
record ServiceSettings(String container, String prefix, String settingsClass) {
    /** The four services, by the name of their container in the chart's pod templates. */
    static final List<ServiceSettings> ALL = List.of(
            new ServiceSettings("gateway", "moemesh.gateway", "io.moemesh.gateway.config.GatewayProperties"),
            new ServiceSettings("expert-service", "moemesh.expert", "io.moemesh.expert.config.ExpertProperties"),
            new ServiceSettings("router", "moemesh.router", "io.moemesh.router.config.RouterProperties"),
            new ServiceSettings("kvcache", "moemesh.kvcache", "io.moemesh.kvcache.config.KvCacheProperties"));

    /**
     * Spring Boot's own settings a container may set, with the class that holds them: the variable must bind to a
     * property of that class (a misspelt SERVER_PROT would not). Every service has a web server and the actuator.
     */
    static final Map<String, Class<?>> SPRING = Map.of(
            "server", ServerProperties.class,
            "management.server", ManagementServerProperties.class);

    static ServiceSettings forContainer(String container) {
        return ALL.stream().filter(s -> s.container.equals(container)).findFirst()
                .orElseThrow(() -> new AssertionError("no service runs in a container named " + container));
    }

    /** What binding an environment gave. */
    record Bound(Object settings, Set<String> readVariables, List<String> errors) {
    }

    /**
     * Binds the service's settings record and Spring's {@link #SPRING} classes from {@code environment} over the
     * service's application.yaml; {@code errors} holds each binding's failure (validation included), its causes'
     * messages chained.
     */
    Bound bind(Map<String, String> environment) {
        Class<?> type = settingsType();
        MutablePropertySources sources = new MutablePropertySources();
        // The name Spring gives the process environment: only that name gets the environment variable mapper.
        sources.addLast(new SystemEnvironmentPropertySource(StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME,
                new LinkedHashMap<>(environment)));
        Properties system = new Properties();
        system.setProperty("java.io.tmpdir", "/tmp");
        sources.addLast(new PropertiesPropertySource(StandardEnvironment.SYSTEM_PROPERTIES_PROPERTY_SOURCE_NAME,
                system));
        applicationYaml(type).forEach(sources::addLast);
        Binder binder = new Binder(ConfigurationPropertySources.from(sources),
                new PropertySourcesPlaceholdersResolver(sources), ApplicationConversionService.getSharedInstance());

        Set<String> read = new LinkedHashSet<>();
        BindHandler recording = new BindHandler() {
            @Override
            public Object onSuccess(ConfigurationPropertyName name, Bindable<?> target, BindContext context,
                                    Object result) {
                ConfigurationProperty p = context.getConfigurationProperty();
                if (p != null && p.getOrigin() instanceof PropertySourceOrigin o
                        && o.getPropertySource() instanceof SystemEnvironmentPropertySource) {
                    read.add(o.getPropertyName());
                }
                return result;
            }
        };
        List<String> errors = new ArrayList<>();
        Object settings = null;
        try {
            settings = binder.bindOrCreate(prefix, Bindable.of(type), recording);
        } catch (BindException e) {
            errors.add(messages(e));
        }
        SPRING.forEach((springPrefix, springType) -> {
            try {
                binder.bind(springPrefix, Bindable.of(springType), recording);
            } catch (BindException e) {
                errors.add(messages(e));
            }
        });
        return new Bound(settings, read, errors);
    }

    Class<?> settingsType() {
        try {
            return Class.forName(settingsClass);
        } catch (ClassNotFoundException e) {
            throw new AssertionError(settingsClass + " is not on the test class path (the service's target/classes,"
                    + " built by -pl helm -am)", e);
        }
    }

    /** The application.yaml next to the settings class: its own module's, not another service's. */
    private static List<PropertySource<?>> applicationYaml(Class<?> type) {
        try {
            Path classes = Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI());
            Path yaml = classes.resolve("application.yaml");
            if (!Files.isRegularFile(yaml)) {
                throw new AssertionError(type.getName() + ": no application.yaml in " + classes);
            }
            return new YamlPropertySourceLoader().load("application.yaml of " + type.getSimpleName(),
                    new FileSystemResource(yaml));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String messages(Throwable e) {
        StringBuilder out = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (!out.isEmpty()) {
                out.append(" ← ");
            }
            out.append(t.getMessage());
        }
        return out.toString();
    }
}
