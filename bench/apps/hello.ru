# Rack hello world for the benchmark, beside the WSGI one:
#   uwsgi-py --master -p 1 --http-socket 127.0.0.1:8080 --disable-logging --rack bench/apps/hello.ru
HELLO = ["Hello World"].freeze

run ->(_env) { [200, { "Content-Type" => "text/plain" }, HELLO] }
