# frozen_string_literal: true

module UWSGIBridge
  # Checks an app's [status, headers, body] (Rack 2.2 SPEC, Rack 3 header
  # arrays too) and sends it to the worker: Array bodies in one write,
  # anything else chunk by chunk as the body yields, never buffered whole.
  class Response
    TOKEN = /\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\z/n.freeze
    BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/n.freeze
    STATUS_TEXT = /\A\d{3}(?:\s|\z)/.freeze
    FRAMING = %w[content-length transfer-encoding].freeze
    DIGITS = /\A\d+\z/.freeze

    def self.status(status)
      code = case status
             when Integer then status
             when STATUS_TEXT then status.to_i
             else raise TypeError, "invalid response status #{status.inspect}"
             end
      raise ArgumentError, "response status #{code} is not between 100 and 999" unless (100..999).cover?(code)

      code
    end

    # [[name, value], ...]: multi-line (Rack 2) and Array (Rack 3) values become repeated headers.
    def self.headers(headers)
      unless headers.respond_to?(:each)
        raise TypeError, "response headers must respond to #each, got #{headers.class}"
      end

      pairs = []
      headers.each do |name, value|
        raise TypeError, "header name must be a String, got #{name.class}" unless name.is_a?(String)
        next if name.start_with?("rack.") # server-private, never sent

        raise ArgumentError, "invalid header name #{name.inspect}" unless name.b.match?(TOKEN)
        raise ArgumentError, "response headers must not contain Status" if name.casecmp?("status")

        lines(name, value).each do |line|
          if name.casecmp?("content-length") && !line.match?(DIGITS)
            raise ArgumentError, "invalid Content-Length #{line.inspect}"
          end

          pairs << [name, line]
        end
      end
      pairs
    end

    def self.lines(name, value)
      list = case value
             when Array then value
             when String then value.empty? ? [value] : value.split("\n")
             else raise TypeError, "value of header #{name} must be a String, got #{value.class}"
             end
      list.each do |line|
        raise TypeError, "value of header #{name} must be a String, got #{line.class}" unless line.is_a?(String)
        raise ArgumentError, "invalid character in header #{name}: #{line.inspect}" if line.b.match?(BAD_VALUE)
      end
    end

    def initialize(channel, env)
      @channel = channel
      @head_request = env["REQUEST_METHOD"] == "HEAD"
    end

    def send_response(status, headers, body)
      begin
        code = Response.status(status)
        pairs = Response.headers(headers)
        path = file_path(body)
        if path
          @channel.frame_value(HEAD, [code, pairs])
          @channel.frame(PATH, path)
        elsif body.is_a?(Array)
          send_array(code, pairs, body)
        else
          send_stream(code, pairs, body)
        end
      ensure
        body.close if body.respond_to?(:close)
      end
      @channel.frame(DONE)
      @channel.flush
    end

    private

    def file_path(body)
      return nil unless body.respond_to?(:to_path)

      path = body.to_path
      path.is_a?(String) && File.file?(path) && File.readable?(path) ? path : nil
    end

    # Already in memory: add Content-Length when missing, send everything at once.
    def send_array(code, pairs, body)
      size = 0
      body.each do |chunk|
        raise TypeError, "body yielded a #{chunk.class}, not a String" unless chunk.is_a?(String)

        size += chunk.bytesize
      end
      pairs << ["Content-Length", size.to_s] if content_length_missing?(code, pairs)
      @channel.frame_value(HEAD, [code, pairs])
      body.each { |chunk| send_chunk(chunk) }
    end

    def send_stream(code, pairs, body)
      raise TypeError, "response body must respond to #each, got #{body.class}" unless body.respond_to?(:each)

      @channel.frame_value(HEAD, [code, pairs])
      body.each do |chunk|
        raise TypeError, "body yielded a #{chunk.class}, not a String" unless chunk.is_a?(String)
        next if chunk.empty?

        send_chunk(chunk)
        @channel.flush
        @channel.check_abort
      end
    end

    def send_chunk(chunk)
      offset = 0
      while offset < chunk.bytesize
        @channel.frame(BODY, chunk.byteslice(offset, MAX_FRAME))
        offset += MAX_FRAME
      end
    end

    def content_length_missing?(code, pairs)
      return false if @head_request || code < 200 || code == 204 || code == 304

      pairs.none? { |name, _| FRAMING.include?(name.downcase) }
    end
  end
end
