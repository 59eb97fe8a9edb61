"""A bare DRF view: the app's authentication and permission classes (settings defaults), body `{}`."""

from rest_framework.response import Response
from rest_framework.views import APIView


class NoopView(APIView):
    def post(self, request):
        return Response({})
