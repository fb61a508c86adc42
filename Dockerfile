# Herald on the official Swift image: build a release binary, run it on the slim runtime image.
FROM swift:6.1-bookworm AS build
WORKDIR /build
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY migrations ./migrations
COPY Tests ./Tests
RUN swift build -c release --product herald --static-swift-stdlib \
    && mkdir /staging \
    && cp "$(swift build -c release --show-bin-path)/herald" /staging/ \
    && cp -R "$(swift build -c release --show-bin-path)/"*.resources /staging/ 2>/dev/null || true

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates libcurl4 libxml2 tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/herald herald
WORKDIR /var/lib/herald
COPY --from=build /staging/ /usr/local/bin/
COPY workflows /etc/herald/workflows
USER herald
ENV HERALD_HOST=0.0.0.0 HERALD_PORT=3000 HERALD_WORKFLOWS=/etc/herald/workflows
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]
