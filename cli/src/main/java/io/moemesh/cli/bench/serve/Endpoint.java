package io.moemesh.cli.bench.serve;

import java.net.URI;
import java.net.URISyntaxException;

/**
 * Where the gateway listens, from {@code --endpoint}: a URL ({@code http://127.0.0.1:8080}, with or without
 * {@code /v1}) or {@code HOST:PORT}. The OpenAI backend uses {@code <scheme>://host:port/v1}; gRPC uses host and port.
 */
public record Endpoint(String scheme, String host, int port) {

    public static Endpoint parse(String text) {
        String s = text.strip();
        if (!s.contains("://")) {
            s = "http://" + s;
        }
        URI uri;
        try {
            uri = new URI(s);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("--endpoint " + text + ": not a URL or HOST:PORT");
        }
        String scheme = uri.getScheme().toLowerCase(java.util.Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https") && !scheme.equals("grpc")) {
            throw new IllegalArgumentException("--endpoint " + text + ": scheme must be http, https or grpc");
        }
        if (uri.getHost() == null) {
            throw new IllegalArgumentException("--endpoint " + text + ": no host");
        }
        int port = uri.getPort() > 0 ? uri.getPort() : scheme.equals("https") ? 443 : 80;
        if (uri.getPort() < 0 && scheme.equals("grpc")) {
            throw new IllegalArgumentException("--endpoint " + text + ": the gRPC backend needs HOST:PORT");
        }
        String path = uri.getPath() == null ? "" : uri.getPath().replaceAll("/+$", "");
        if (!path.isEmpty() && !path.equals("/v1")) {
            throw new IllegalArgumentException("--endpoint " + text + ": give the server's base URL "
                    + "(http://HOST:PORT or http://HOST:PORT/v1), not " + path);
        }
        return new Endpoint(scheme.equals("grpc") ? "http" : scheme, uri.getHost(), port);
    }

    /** The OpenAI API base, {@code http://host:port/v1}. */
    public URI openAiBase() {
        String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
        return URI.create(scheme + "://" + h + ":" + port + "/v1");
    }
}
