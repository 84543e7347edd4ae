package io.moemesh.gateway.http;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.tomcat.util.buf.EncodedSolidusHandling;
import org.springframework.boot.tomcat.servlet.TomcatServletWebServerFactory;
import org.springframework.boot.web.server.WebServerFactoryCustomizer;
import org.springframework.stereotype.Component;

/**
 * The one public path that may carry percent-escapes: a model id after {@code /v1/models/} (the clients'
 * models.retrieve). Clients encode ids: the official openai npm client sends {@code org/name} as
 * {@code org%2Fname}, a space as {@code %20}, other characters as their UTF-8 bytes ({@code %C3%A9}); a client that
 * does not encode sends {@code org/name} as two segments. These reach {@code GET /v1/models/{*id}}, which answers the
 * served model or 404 {@code model_not_found}.
 *
 * <p>Tomcat refuses an encoded slash ({@code %2F}) by default with a 400 of its own, before any filter or handler;
 * here it decodes it ({@code DECODE}), so the resolved path is the fully decoded and normalised one.
 * {@link PublicApiFilter} still refuses every API path whose raw form differs from the resolved one, except when
 * {@link #isEncodedModelId} holds: the raw path is {@code /v1/models/} and then an id that percent-decodes (UTF-8)
 * to exactly the rest of the resolved path. So nothing the container removed or rewrote (a {@code ;parameter}, a
 * dot or empty segment, also one that only appears once {@code %2F} or {@code %2E} is decoded) passes, and the raw
 * path, which Spring MVC routes by, stays under {@code /v1/models/}, whose only handler is the model lookup.
 */
@Component
final class ModelIdPath implements WebServerFactoryCustomizer<TomcatServletWebServerFactory> {
    static final String PREFIX = "/v1/models/";

    @Override
    public void customize(TomcatServletWebServerFactory factory) {
        factory.addConnectorCustomizers(c -> c.setEncodedSolidusHandling(EncodedSolidusHandling.DECODE.getValue()));
    }

    /** The raw path is {@code /v1/models/} and an id that decodes to the rest of the resolved path (see above). */
    static boolean isEncodedModelId(String raw, String resolved) {
        if (!raw.startsWith(PREFIX) || !resolved.startsWith(PREFIX)) {
            return false;
        }
        String id = decode(raw.substring(PREFIX.length()));
        return id != null && id.equals(resolved.substring(PREFIX.length()));
    }

    /** Percent-decoded as UTF-8 ('+' is a plus in a path); null for a malformed escape or bytes that are not UTF-8. */
    static String decode(String raw) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(raw.length());
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '%') {
                int hi = i + 2 < raw.length() ? Character.digit(raw.charAt(i + 1), 16) : -1;
                int lo = hi < 0 ? -1 : Character.digit(raw.charAt(i + 2), 16);
                if (lo < 0) {
                    return null;
                }
                bytes.write(hi << 4 | lo);
                i += 2;
            } else if (c < 0x80) {
                bytes.write(c);
            } else {
                // A raw URI is ASCII (Tomcat refuses other bytes in the request line): anything else is not ours.
                return null;
            }
        }
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes.toByteArray()))
                    .toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }
}
